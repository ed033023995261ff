"""Pictures and tables a person learns from.

- `drawing`: how every picture is drawn (one PNG, matplotlib's object API, mosaics of small pictures)
- `filters`, `feature_maps`: the first layer's filters; each conv block's output for a few images
- `evaluation`: predictions, the confusion matrix (counted, summarized, drawn), accuracy per class
- `mistakes`: the most confident mistakes
- `architecture_plot`, `describe`: an architecture as bar charts, and as rich/markdown tables
- `gradcam`: where in an image the network looked (`convtune explain`)
- `compare`: two trained models side by side (`convtune explain --compare`)
"""
