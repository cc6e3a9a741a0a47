//! `sqlx::migrate!` embeds the migration files at compile time; without
//! this, adding one did not rebuild the crate until a source file changed
//! (sqlx's documented build script).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
