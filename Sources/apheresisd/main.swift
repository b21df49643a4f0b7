print("apheresisd")
