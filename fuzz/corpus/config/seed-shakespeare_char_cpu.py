# nanoGPT's published CPU recipe on character-level tiny Shakespeare: the rest of
# train_shakespeare_char.py, with the README's CPU overrides. nanoGPT reaches val ~1.88.
# Prepare the data first:
#   finegpt prepare --tokenizer char --input corpora/tinyshakespeare.txt --out data/shakespeare_char
out_dir = 'out-shakespeare-char'
eval_interval = 250
eval_iters = 20
log_interval = 10
always_save_checkpoint = False

wandb_log = False
wandb_project = 'shakespeare-char'
wandb_run_name = 'mini-gpt'

dataset = 'shakespeare_char'
gradient_accumulation_steps = 1
batch_size = 12
block_size = 64

n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0

learning_rate = 1e-3
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100

device = 'cpu'
compile = False
