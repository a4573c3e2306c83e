use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        COUNT.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        COUNT.fetch_sub(1, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}
#[global_allocator]
static A: Counting = Counting;
fn mb() -> String {
    format!(
        "{:.1} MiB in {} blocks",
        LIVE.load(Ordering::Relaxed) as f64 / 1048576.0,
        COUNT.load(Ordering::Relaxed)
    )
}
fn main() {
    let p = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    println!("start {}", mb());
    let tree = capstan::source::read(&p, Some("HEAD")).unwrap();
    println!("read {}", mb());
    let mut d = capstan::core::diag::Diagnostics::default();
    let repo = capstan::core::load::load(&tree, &mut d);
    println!("load {}", mb());
    let r = capstan::core::resolve::resolve(&repo, &mut d);
    println!("resolve {}", mb());
    drop(tree);
    println!("drop tree {}", mb());
    drop(r);
    println!("drop resolved {}", mb());
}
