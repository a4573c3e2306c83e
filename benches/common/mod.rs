//! What more than one benchmark needs (a folder, so that cargo does not take it for a
//! benchmark of its own).

use std::path::Path;

use capstan::synth::{Shape, generate};

/// Replaces the example's projects in the work tree with the generated ones of `shape`.
pub fn synthetic(shape: Shape) -> impl FnOnce(&Path) {
    move |work: &Path| {
        let base = capstan::source::read_dir(work).expect("the example reads");
        std::fs::remove_dir_all(work.join("projects")).expect("rm projects");
        let files = generate(&base, shape, None);
        crate::support::write_tree(files.files(), work);
    }
}
