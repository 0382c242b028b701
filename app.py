"""SpinalSAM web app — `python app.py` (also the Hugging Face Spaces entry point)."""

import logging
import sys

from spinalsam.launch import create_demo, launch_options
from spinalsam.settings import SettingsError, load_settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
try:
    settings = load_settings()
except SettingsError as exc:  # a wrong value must stop start-up, not be silently replaced
    sys.exit(f"SpinalSAM cannot start: {exc}")
demo = create_demo(settings)

if __name__ == "__main__":
    demo.launch(**launch_options(settings))
