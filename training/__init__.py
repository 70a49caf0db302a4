"""How checkpoints are made: collaborative self-play and ReST (`askwise train`), and the
evaluation over a grid of costs (`askwise eval`).

    data.py       AmbigQA items, dev slices         pacific.py   PACIFIC evaluation items
    passages.py   grounded documents as passages    leakcheck.py surface rules' AUC for ambiguity
    simulator.py  the user who knows the intent     episodes.py  one conversation, scored
    bootstrap.py  format demonstrations             improve.py   relabel + keep the best
    finetune.py   SFT (LoRA) under accelerate       rest.py      the loop
    rollout.py    the engines that play             evaluate.py  grid, baselines, Spearman
    quality.py    questions, lists, awareness       config.py    TrainConfig
    report.py / plots.py  Markdown and PNG

Depends on askwise.policy (prompt, actions, reward, engines); never on askwise.server.
"""
