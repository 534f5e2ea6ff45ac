//! Applications that run on the engine (echo, discard, http). TODO
