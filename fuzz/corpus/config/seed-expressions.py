import os
from time import time
x = 2 ** 10 + 7 // 2 - -3 % 5  # comment
y = (1.5e-3 * 4) / 3.0
out_dir = 'out-' + str(x) + "_" + 'a' * 3
n = int('12') + int(3.9) + int(True)
f = float('inf'); g = float("nan")
s = r'raw\n' '\x41\u00e9\N{BULLET}' """triple
quoted"""
batch_size = 'auto'
vocab_size = None
data_dir = None
learning_rate = 6e-4
learning_rate *= 2
max_iters = 1_000_000
seed = 0x1F + 0o17 + 0b101
stamp = time.time()
wandb_run_name = 'run' + str(time.time())
dropout = 0.0; bias = True
n_embd = 64 \
  * 2
