# The quickstart: a small character-level GPT on Debian's fortune cookies, a few minutes on a
# laptop-class CPU. Data: finegpt prepare --tokenizer char --input /usr/share/games/fortunes/...
out_dir = 'out-fortunes-char'
dataset = 'fortunes_char'
eval_interval = 250
eval_iters = 20
log_interval = 50
always_save_checkpoint = False

gradient_accumulation_steps = 1
batch_size = 16
block_size = 128

n_layer = 4
n_head = 4
n_embd = 192
dropout = 0.0

learning_rate = 1e-3
max_iters = 1500
lr_decay_iters = 1500
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100

device = 'cpu'
compile = False
