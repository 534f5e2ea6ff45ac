//! TODO(tcp data structures helper)
