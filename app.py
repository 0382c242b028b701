"""SpinalSAM web app — `python app.py` (also the Hugging Face Spaces entry point)."""

import logging

from spinalsam.launch import create_demo, launch_options

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
demo = create_demo()

if __name__ == "__main__":
    demo.launch(**launch_options())
