"""Where and why models fail, computed from stored predictions and test faces: label noise against the FER+ crowd
and cleanlab's flags (label_noise.py), the corruption suite (corruptions.py), accuracy and corruption error under
it (robustness.py), what models look at across the test set (saliency.py), where those results are cached in the
store (cache.py), the app's background jobs (background.py), and the command line (cli.py)."""
