"""SpinalSAM web app — `python app.py` (also the Hugging Face Spaces entry point)."""

from spinalsam.launch import create_demo, launch_options

demo = create_demo()

if __name__ == "__main__":
    demo.launch(**launch_options())
