"""exo's real backend: the decision core's moves carried out on this machine's real memories.

Imports torch, pynvml and psutil; ``exo_sim`` never imports this package.
"""
