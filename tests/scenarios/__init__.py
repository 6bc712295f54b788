"""The labelled scenario suite: synthetic training runs with planted anomalies and healthy runs.

suite.py  the scenarios as numpy arrays and their labels (no I/O)
score.py  the matcher: findings against labels, per scenario and per written source
write.py  every scenario written by the real writers (JSONL, tensorboardX, wandb offline)
"""
