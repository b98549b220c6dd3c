//! The fork helper refuses threaded processes and libtest runs tests on threads, so these
//! checks run from their own `main` on the main thread (`harness = false`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;

use cmamap_testkit::process::{is_single_threaded, recv_fd, run_in_child, send_fd, spawn_child};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

fn child_verdicts() {
    assert_eq!(run_in_child(|| Ok(())).unwrap(), Ok(()));
    assert_eq!(
        run_in_child(|| Err("bad data".to_owned())).unwrap(),
        Err("bad data".to_owned())
    );
    // The verdict carries the panic message; silence the default hook's report of it.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let panicked = run_in_child(|| panic!("expected panic in child"))
        .unwrap()
        .unwrap_err();
    std::panic::set_hook(default_hook);
    assert!(panicked.contains("expected panic in child"), "{panicked}");
}

fn child_sees_parent_memory_as_of_fork() {
    let value = 41 + 1;
    let child = spawn_child(move || {
        if value == 42 {
            Ok(())
        } else {
            Err(format!("child saw {value}"))
        }
    })
    .unwrap();
    assert!(child.pid() > 0);
    assert_eq!(child.wait().unwrap(), Ok(()));
}

fn dropping_a_child_kills_it() {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    // The child would wait forever for a byte that never comes.
    let child = spawn_child(move || {
        let mut byte = [0u8; 1];
        let _ = File::from(reader).read(&mut byte);
        Ok(())
    })
    .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.pid());
    drop(child);
    // Reaped: the pid no longer names a child of ours.
    assert_eq!(
        nix::sys::wait::waitpid(pid, None).unwrap_err(),
        nix::errno::Errno::ECHILD
    );
    drop(writer);
}

fn refuses_threaded_processes() {
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || wait.recv().ok());
    assert!(!is_single_threaded());
    assert!(run_in_child(|| Ok(())).is_err());
    go.send(()).unwrap();
    thread.join().unwrap();
}

fn passes_a_descriptor() {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    let (pipe_r, pipe_w) = nix::unistd::pipe().unwrap();
    send_fd(a.as_fd(), pipe_w.as_fd(), b"hello").unwrap();
    drop(pipe_w);
    let mut payload = [0u8; 16];
    let (fd, n) = recv_fd(b.as_fd(), &mut payload).unwrap();
    assert_eq!(&payload[..n], b"hello");
    File::from(fd).write_all(b"through").unwrap();
    let mut text = String::new();
    File::from(pipe_r).read_to_string(&mut text).unwrap();
    assert_eq!(text, "through");
}

fn main() {
    let checks: [(&str, fn()); 5] = [
        ("child_verdicts", child_verdicts),
        (
            "child_sees_parent_memory_as_of_fork",
            child_sees_parent_memory_as_of_fork,
        ),
        ("passes_a_descriptor", passes_a_descriptor),
        ("dropping_a_child_kills_it", dropping_a_child_kills_it),
        // Last: once a thread has existed, /proc/self/task may lag behind its exit.
        ("refuses_threaded_processes", refuses_threaded_processes),
    ];
    for (name, check) in checks {
        check();
        println!("test {name} ... ok");
    }
    println!("{} passed, 0 failed", checks.len());
}
