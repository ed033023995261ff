"""Pictures and tables a person learns from: filters, feature maps, Grad-CAM, architectures side by side."""
