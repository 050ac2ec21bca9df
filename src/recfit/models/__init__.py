"""Models: backbones, towers and scorers. Know no file format; see recfit.training for the wiring."""
