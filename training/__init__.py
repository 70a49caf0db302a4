"""How checkpoints are made: collaborative self-play and ReST (`askwise train`), and the
evaluation over a grid of costs (`askwise eval`).

    data.py       AmbigQA / grounded documents      pacific.py   PACIFIC evaluation items
    simulator.py  the user who knows the intent     episodes.py  one conversation, scored
    bootstrap.py  format demonstrations             improve.py   relabel + keep the best
    finetune.py   SFT (LoRA) under accelerate       rest.py      the loop
    rollout.py    the engine that plays             evaluate.py  grid, baselines, Spearman
    report.py / plots.py  Markdown and PNG          config.py    TrainConfig

Depends on askwise.policy (prompt, actions, reward, engines); never on askwise.server.
"""
