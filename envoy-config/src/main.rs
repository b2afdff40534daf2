//! `tollgate-config`: the generator's command line.
fn main() {
    eprintln!("tollgate-config: not built yet");
    std::process::exit(2);
}
