"""One module per task beyond training: the wiring (odin/run.py) makes the generated set, then hands it here.

  generated.py  prompts -> images -> post, shared by every task (and post=auto's choice)
  images.py     the real and generated images a comparison looks at, as the classifier sees them
  diversity.py  task=diversity: within-class pairwise SSIM and colorfulness, generated vs real
  detect.py     task=detect: a real-vs-generated classifier's held-out accuracy (the gap)
"""
