//! `tally::node_machine_id()` equals npm's `node-machine-id` `machineIdSync()` on this
//! machine. Needs the package: run `crates/tally/tests/setup-node.sh` and set
//! `TALLY_NODE_MODULES` to the path it prints.

use std::process::Command;

#[test]
fn equals_node_machine_id() {
    let Ok(modules) = std::env::var("TALLY_NODE_MODULES") else {
        panic!(
            "TALLY_NODE_MODULES is not set: run \
             `export TALLY_NODE_MODULES=\"$(crates/tally/tests/setup-node.sh)\"` \
             (installs node-machine-id@1.1.12 with npm) and run the tests again"
        );
    };
    let package = std::path::Path::new(&modules).join("node-machine-id");
    assert!(
        package.join("package.json").exists(),
        "{} does not hold node-machine-id: run crates/tally/tests/setup-node.sh",
        package.display()
    );
    let script = format!(
        "const m = require({:?}); console.log(m.machineIdSync() + ' ' + m.machineIdSync(true));",
        package.display().to_string()
    );
    let out = Command::new("node").args(["-e", &script]).output().expect("run node (is Node.js installed?)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (hashed, _original) = text.trim().split_once(' ').expect("two values");
    assert_eq!(tally::node_machine_id().as_deref(), Some(hashed));
    assert_eq!(hashed.len(), 64);
}
