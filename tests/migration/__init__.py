"""Migration from jaxopt 0.8.5: the guide covers every name, and the same programs agree."""
