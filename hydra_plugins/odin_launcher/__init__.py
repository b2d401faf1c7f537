"""The classes of hydra/launcher=slurm, slurm_cpu and local (conf/hydra/launcher/*.yaml): Hydra instantiates
launchers only from the `hydra_plugins` namespace, so the launchers written in odin/launcher.py are named here."""

from odin import launcher


class SlurmLauncher(launcher.SlurmLauncher):
    pass


class LocalLauncher(launcher.LocalLauncher):
    pass
