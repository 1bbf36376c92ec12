"""torchstages: reproducible PyTorch training pipelines that run as DVC stages.

Kept import-free on purpose: every stage imports only the modules it lists in
its ``dvc.yaml`` deps, and nothing heavy is paid for at package import.
"""

__version__ = "0.1.0"
