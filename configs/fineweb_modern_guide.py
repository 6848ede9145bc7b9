# The guide's 24 GB run (configs/fineweb_160M_guide.py: 10 layers, 640 channels, 524,288 tokens
# per step) with the modern recipe: `recipe = 'modern'` sets rotary position embeddings,
# RMSNorm, QK-norm, ReLU^2, an untied head, zero-initialised projections, logit_softcap = 15 and
# Muon for the hidden matrices (muon_lr 0.02, momentum 0.95), AdamW for the rest: the embeddings
# at embedding_lr 0.05, the head at head_lr 0.008, the gains at learning_rate. Keys after `recipe`
# override its values. What it buys on our own runs is measured in bench/RESULTS.md (finegpt plan
# --recipe modern recommends shapes for it).
recipe = 'modern'
out_dir = 'out-fineweb-modern'
eval_interval = 1000
eval_iters = 200
log_interval = 100
always_save_checkpoint = True
dataset = 'fineweb'
gradient_accumulation_steps = 16
batch_size = 32
block_size = 1024
n_layer = 10
n_head = 10
n_embd = 640
dropout = 0.0
bias = False
learning_rate = 6e-4
max_iters = 50000
warmup_iters = 2000
lr_decay_iters = 50000
min_lr = 6e-5
beta2 = 0.99
weight_decay = 0.1
