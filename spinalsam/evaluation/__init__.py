"""The evaluation harness: protocol prompts, labelled volumes, robustness modes and the sources.

The CLIs (`spinalsam.evaluate`, `spinalsam.evaluate3d`, `spinalsam.evaluate_report`) are thin
shells over these modules, so every number the project quotes comes from one implementation.
"""
