//! chg forks: a session used before a fork must rebuild its runtime and clients in the child.
//! Alone in its own test binary, so that the fork happens with no other test threads running.

mod common;

use common::Emulator;
use hg_keyvault_core::{azure::SetOptions, SecretRef, SecretValue, Session};

#[test]
fn a_session_rebuilds_its_runtime_after_fork() {
    let emu = Emulator::start(&[]);
    let session = Session::with_env(&emu.config(), emu.secret_env("officer")).unwrap();
    let secret_ref = SecretRef::parse("secret://fork/x").unwrap();
    session
        .set(
            &secret_ref,
            &SecretValue::from("before fork"),
            SetOptions::default(),
        )
        .unwrap();
    let parent = std::process::id();
    assert_eq!(session.built_in_pid(), Some(parent));

    // SAFETY: the child only uses the session and then `_exit`s, never returning into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = session
            .get(&secret_ref, None)
            .map(|s| s.value.expose() == b"before fork")
            .unwrap_or(false)
            && session.built_in_pid() == Some(std::process::id());
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status}"
    );
    // The parent's runtime is untouched and still works.
    assert_eq!(session.built_in_pid(), Some(parent));
    assert_eq!(
        session.get(&secret_ref, None).unwrap().value.expose(),
        b"before fork"
    );
}
