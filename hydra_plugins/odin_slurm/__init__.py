"""hydra/launcher=slurm's class (conf/hydra/launcher/slurm.yaml): Hydra instantiates launchers only from the
`hydra_plugins` namespace, so the launcher written in odin/launcher.py is named here."""

from odin.launcher import SlurmLauncher as _OdinSlurmLauncher


class SlurmLauncher(_OdinSlurmLauncher):
    pass
