"""The promote stage (`stage.main`): the gate between the candidate and the registry's champion."""
