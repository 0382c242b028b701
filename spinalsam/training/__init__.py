"""Fine-tuning SpinalSAM (LoRA in the image encoder + CBAM) on user data.

`python -m spinalsam.train` is the entry point; each module here does one job: `data` loads
slices and splits them by case, `prompts` simulates boxes and clicks, `batch` moves samples into
SAM's input frame, `losses` scores logits, `validate` applies the evaluation protocol,
`checkpoint` saves and restores resumable state, `loop` runs the optimisation, and `publish`
pushes the adapter to the Hugging Face Hub.
"""
