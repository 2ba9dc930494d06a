"""Training settings read by a LazyConfig training loop (Detectron2's `common/train.py` keys)."""

train = dict(
    output_dir="./output",
    # weights loaded before training (a path or URL); "" trains from the initialisation
    init_checkpoint="",
    max_iter=90000,
    amp=dict(enabled=False),  # mixed precision
    ddp=dict(  # DistributedDataParallel options
        broadcast_buffers=False,
        find_unused_parameters=False,
        fp16_compression=False,
    ),
    checkpointer=dict(period=5000, max_to_keep=100),  # PeriodicCheckpointer
    eval_period=5000,
    log_period=20,
    device="cuda",  # where a training script puts the model; set "cpu" on a machine without CUDA
)
