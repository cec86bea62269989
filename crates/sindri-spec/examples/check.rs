//! Loads a file and prints the result (for trying the loader by hand).
fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sindri.yaml".into());
    match sindri_spec::load_file(std::path::Path::new(&path)) {
        Ok(spec) => println!("{spec:#?}"),
        Err(d) => println!("{d}"),
    }
}
