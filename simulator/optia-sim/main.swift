print("optia-sim")
