"""imgcore: the imgcdn contract (policy, canonical params, key layout) and the pixels."""
