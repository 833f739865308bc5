def receive_from_params(p, c):
    pass
