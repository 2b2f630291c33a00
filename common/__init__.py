"""fedntc core: models, key split, data, training and evaluation (no Flower app code)."""

import warnings

# compressai scripts a few helpers with torch.jit at import time; newer torch warns about it.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
