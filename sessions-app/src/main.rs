//! The sessions server (work in progress).

fn main() {}
