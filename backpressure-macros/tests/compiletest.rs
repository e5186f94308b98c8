//! The attribute's compile-time contract: every `ui/pass` case compiles, every `ui/fail` case
//! fails with exactly the pinned message. Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p backpressure-macros --test compiletest` and read them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
