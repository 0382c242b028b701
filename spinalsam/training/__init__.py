"""Fine-tuning SpinalSAM (LoRA in the image encoder + CBAM) on user data.

`python -m spinalsam.train` is the entry point; the modules here each do one job:
`data` loads and splits training objects, `prompts` simulates clicks and boxes, `losses` scores
predictions, `loop` runs the optimisation with checkpoints, `publish` pushes to the Hub.
"""
