//! The man pages, rendered from the clap definitions under the installed name
//! (`openclaw-cluster`), with the sections clap does not know: EXIT STATUS, ENVIRONMENT,
//! EXAMPLES and SEE ALSO. The committed `man/` folder is checked against this by a test
//! (`OPENCLAW_UPDATE_MAN=1 cargo test --test it man_pages` rewrites it); the Debian
//! package installs those files.

use clap::CommandFactory;
use clap_mangen::roff::{Roff, roman};

/// The installed name, and the prefix of every page.
pub const NAME: &str = "openclaw-cluster";

/// Environment variables every command reads.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "OPENCLAW_<SECTION>__<KEY>",
        "Any configuration key, e.g. OPENCLAW_COORDINATOR__PORT=9000 (lists as [a, b]); above the -c file, below flags.",
    ),
    ("OPENCLAW_URL", "The coordinator's URL for the client commands (--url)."),
    ("OPENCLAW_TOKEN", "The admin (or tasks) token for the client commands, the join token for worker (--token)."),
    (
        "OPENCLAW_GATEWAY_TOKEN",
        "The local OpenClaw gateway's token, for a worker's agent skills (never passed to skills).",
    ),
    ("RUST_LOG", "Log filter; wins over log.level."),
];

/// Examples, by page name.
fn examples(page: &str) -> &'static [(&'static str, &'static str)] {
    match page {
        "openclaw-cluster" => &[
            (
                "Try it on one machine: a coordinator and a worker in one process.",
                "openclaw-cluster dev --skills-dir examples/skills",
            ),
            ("Submit a task and wait for its result.", "openclaw-cluster tasks submit --skill echo --param n=3 --wait"),
        ],
        "openclaw-cluster-coordinator" => &[
            (
                "Run the coordinator with a config file.",
                "openclaw-cluster coordinator -c /etc/openclaw-cluster/coordinator.yaml",
            ),
            (
                "On another port and database.",
                "openclaw-cluster coordinator --port 9000 --db-path /srv/openclaw/cluster.db",
            ),
        ],
        "openclaw-cluster-worker" => &[(
            "Join a coordinator on another machine.",
            "OPENCLAW_TOKEN=$(cat worker.token) openclaw-cluster worker --coordinator-host 10.0.0.5 --skills-dir ./skills",
        )],
        "openclaw-cluster-secrets" | "openclaw-cluster-secrets-set" => &[
            (
                "Set a secret from the environment (never on the command line).",
                "printf %s \"$OPENAI_API_KEY\" | openclaw-cluster secrets set OPENAI_API_KEY",
            ),
            (
                "From a file, only for nodes tagged prod.",
                "openclaw-cluster secrets set DEPLOY_KEY --file key.txt --tag prod",
            ),
            ("A task that uses it.", "openclaw-cluster tasks submit --skill summarize --secret OPENAI_API_KEY"),
        ],
        "openclaw-cluster-secrets-list" => &[("Names, scopes, who set them, when.", "openclaw-cluster secrets list")],
        "openclaw-cluster-secrets-rm" => &[("Remove a secret.", "openclaw-cluster secrets rm OPENAI_API_KEY")],
        "openclaw-cluster-secrets-rotate-key" => {
            &[("Seal every secret again under a new key file.", "openclaw-cluster secrets rotate-key")]
        }
        "openclaw-cluster-migrate" => &[
            ("What a migration would do.", "openclaw-cluster migrate --status"),
            (
                "Migrate (a backup is taken first).",
                "openclaw-cluster migrate --db-path /var/lib/openclaw-cluster/cluster.db",
            ),
        ],
        "openclaw-cluster-nodes" => &[
            ("Online nodes that have a skill.", "openclaw-cluster nodes --skill ocr"),
            ("Take a node out of placement for maintenance.", "openclaw-cluster nodes drain mac-mini"),
            ("Print nodes going online, offline, drained, ... as it happens.", "openclaw-cluster nodes --watch"),
        ],
        "openclaw-cluster-tasks-watch" => &[
            ("Every task event of one skill, until Ctrl+C.", "openclaw-cluster tasks watch --skill ocr"),
            ("Events as JSON lines, for jq.", "openclaw-cluster tasks watch --json | jq -c '{task_id, event, status}'"),
        ],
        "openclaw-cluster-tasks-logs" => &[
            ("What a task printed (its kept tail).", "openclaw-cluster tasks logs TASK_ID"),
            ("Follow a running task's output until it ends.", "openclaw-cluster tasks logs -f TASK_ID"),
        ],
        "openclaw-cluster-health" => {
            &[("In a script: is any node online?", "openclaw-cluster health >/dev/null || echo 'no worker'")]
        }
        "openclaw-cluster-tasks-submit" => &[
            (
                "An agent task with a prompt, at high priority.",
                "openclaw-cluster tasks submit --skill summarize --prompt \"$(cat notes.txt)\" --priority high",
            ),
            (
                "Only on a Mac, and wait for the result.",
                "openclaw-cluster tasks submit --skill shortcuts --platform macos --wait",
            ),
        ],
        "openclaw-cluster-mcp" => &[
            (
                "Add the cluster to Claude Code, through this program.",
                "claude mcp add cluster -e OPENCLAW_TOKEN=$(cat tasks.token) -- openclaw-cluster mcp --url http://coordinator:8888",
            ),
            (
                "In OpenClaw's openclaw.json (mcp.servers), on the coordinator's machine.",
                "\"cluster\": { \"command\": \"openclaw-cluster\", \"args\": [\"mcp\"] }",
            ),
        ],
        "openclaw-cluster-tasks-wait" => {
            &[("Wait at most ten minutes.", "openclaw-cluster tasks wait TASK_ID --timeout 10m")]
        }
        "openclaw-cluster-skills" => {
            &[("Why a skill is not advertised.", "openclaw-cluster skills --skills-dir ./skills")]
        }
        "openclaw-cluster-skills-push" => &[
            (
                "Push a skill to every node tagged gpu and watch them install it.",
                "openclaw-cluster skills push ./skills/summarize --tags gpu",
            ),
            ("To two nodes, without waiting.", "openclaw-cluster skills push ./summarize --nodes w1,w2 --no-wait"),
        ],
        "openclaw-cluster-skills-remove" => &[
            ("Remove a pushed skill from every node it was pushed to.", "openclaw-cluster skills remove summarize"),
            ("Only from one node.", "openclaw-cluster skills remove summarize --nodes w2"),
        ],
        "openclaw-cluster-skills-rollback" => {
            &[("Go back to the version pushed before.", "openclaw-cluster skills rollback summarize")]
        }
        "openclaw-cluster-skills-pushes" => {
            &[("Which nodes have each pushed skill.", "openclaw-cluster skills pushes")]
        }
        "openclaw-cluster-backup" => {
            &[("A nightly backup from cron.", "openclaw-cluster backup /var/backups/openclaw/cluster-$(date +%F).db")]
        }
        "openclaw-cluster-dev" => &[
            ("A trial cluster in this folder, until Ctrl+C.", "openclaw-cluster dev --skills-dir examples/skills"),
            ("On another port, with text logs.", "openclaw-cluster dev --port 9000 --log-format text"),
        ],
        "openclaw-cluster-tasks" => &[
            (
                "The newest tasks, then one of them.",
                "openclaw-cluster tasks list && openclaw-cluster tasks get TASK_ID",
            ),
            ("Submit a task and wait for its result.", "openclaw-cluster tasks submit --skill echo --wait"),
        ],
        "openclaw-cluster-schedules" => &[
            (
                "Every morning at 7 in Berlin, on whichever machine has the skill.",
                "openclaw-cluster schedules add morning --cron \"0 7 * * *\" --tz Europe/Berlin --skill summarize-inbox",
            ),
            ("Next due times, last runs and their status.", "openclaw-cluster schedules list"),
        ],
        "openclaw-cluster-schedules-add" => &[
            (
                "Every morning at 7 in Berlin.",
                "openclaw-cluster schedules add morning --cron \"0 7 * * *\" --tz Europe/Berlin --skill summarize-inbox",
            ),
            (
                "Every 10 minutes; a run still going when the next is due waits for it.",
                "openclaw-cluster schedules add disk --every 10m --overlap queue --skill disk-report",
            ),
            (
                "Once, in 20 minutes.",
                "openclaw-cluster schedules add reminder --at 20m --skill notify --param text=tea",
            ),
        ],
        "openclaw-cluster-schedules-edit" => {
            &[("Fire every hour from now on.", "openclaw-cluster schedules edit morning --every 1h")]
        }
        "openclaw-cluster-run" => &[
            (
                "Check a workflow file, submit it, and follow each step until it ends.",
                "openclaw-cluster run morning.yaml --wait",
            ),
            ("Submit it and print the workflow task's id and its steps.", "openclaw-cluster run morning.yaml"),
        ],
        "openclaw-cluster-schedules-get" => &[("One schedule.", "openclaw-cluster schedules get morning")],
        "openclaw-cluster-schedules-list" => &[(
            "Schedules as JSON, for a script.",
            "openclaw-cluster schedules list --json | jq '.schedules[].next_due'",
        )],
        "openclaw-cluster-schedules-pause" => &[("Stop firing for now.", "openclaw-cluster schedules pause morning")],
        "openclaw-cluster-schedules-resume" => {
            &[("Fire again from the next due time.", "openclaw-cluster schedules resume morning")]
        }
        "openclaw-cluster-schedules-remove" => {
            &[("Remove a schedule (its tasks stay).", "openclaw-cluster schedules remove morning")]
        }
        "openclaw-cluster-schedules-run-now" => &[(
            "Fire now and wait for the task.",
            "openclaw-cluster tasks wait $(openclaw-cluster schedules run-now morning)",
        )],
        "openclaw-cluster-schedules-runs" => {
            &[("What each due time did, newest first.", "openclaw-cluster schedules runs morning")]
        }
        "openclaw-cluster-tasks-get" => &[
            ("A task with its history and why it waits.", "openclaw-cluster tasks get TASK_ID"),
            ("Only its result, for a script.", "openclaw-cluster tasks get TASK_ID --json | jq .result"),
        ],
        "openclaw-cluster-tasks-list" => &[
            ("Tasks waiting for a node.", "openclaw-cluster tasks list --status pending"),
            ("The failed tasks of one skill.", "openclaw-cluster tasks list --status failed --skill ocr"),
        ],
        "openclaw-cluster-tasks-cancel" => {
            &[("Cancel a task; a running one is stopped on its worker.", "openclaw-cluster tasks cancel TASK_ID")]
        }
        "openclaw-cluster-tasks-retry" => {
            &[("Run an ended task again and wait for it.", "openclaw-cluster tasks retry TASK_ID --wait")]
        }
        "openclaw-cluster-nodes-drain" => {
            &[("No new work for a node; its running tasks finish.", "openclaw-cluster nodes drain mac-mini")]
        }
        "openclaw-cluster-nodes-undrain" => {
            &[("Let a drained node take work again.", "openclaw-cluster nodes undrain mac-mini")]
        }
        "openclaw-cluster-nodes-forget" => {
            &[("Remove an offline node from the registry.", "openclaw-cluster nodes forget old-laptop")]
        }
        "openclaw-cluster-completions" => {
            &[("Completions for bash.", "openclaw-cluster completions bash > /etc/bash_completion.d/openclaw-cluster")]
        }
        _ => &[],
    }
}

const EXIT_STATUS: &str = "0 success; 1 a negative answer (a task failed, the cluster is unhealthy, not found, the coordinator is unreachable) or a failure; 2 a usage or configuration error; 3 the coordinator cannot write its database or the folder holding it; 4 a wait that ran out of its --timeout with the task still pending or running.";

/// Every page: (file name, roff text).
pub fn pages() -> Vec<(String, Vec<u8>)> {
    let mut cmd = crate::cli::Cli::command().name(NAME).disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, NAME.to_string(), None, &mut out);
    out
}

/// One of clap_mangen's section renderers.
type Section = fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>;

fn walk(cmd: &clap::Command, name: String, parent: Option<&str>, out: &mut Vec<(String, Vec<u8>)>) {
    let subcommands: Vec<&clap::Command> = cmd.get_subcommands().collect();
    let bin_name = format!("{NAME}{}", name[NAME.len()..].replace('-', " "));
    let man = clap_mangen::Man::new(cmd.clone().name(name.clone()).bin_name(bin_name));
    let mut page = Vec::new();
    let sections: [Section; 4] = [
        clap_mangen::Man::render_title,
        clap_mangen::Man::render_name_section,
        clap_mangen::Man::render_synopsis_section,
        clap_mangen::Man::render_description_section,
    ];
    for render in sections {
        render(&man, &mut page).expect("rendering into memory cannot fail");
    }
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page).expect("rendering into memory cannot fail");
    }
    if !subcommands.is_empty() {
        man.render_subcommands_section(&mut page).expect("rendering into memory cannot fail");
    }
    let mut roff = Roff::default();
    roff.control("SH", ["EXIT STATUS"]);
    let exit = cmd.get_after_long_help().map(|h| h.to_string());
    roff.text([roman(exit.as_deref().map(|h| h.trim_start_matches("Exit status: ")).unwrap_or(EXIT_STATUS))]);
    roff.control("SH", ["ENVIRONMENT"]);
    for (var, what) in ENVIRONMENT {
        roff.control("TP", []).text([clap_mangen::roff::bold(*var)]).text([roman(*what)]);
    }
    let examples = examples(&name);
    if !examples.is_empty() {
        roff.control("SH", ["EXAMPLES"]);
        for (what, line) in examples {
            roff.text([roman(*what)])
                .control("PP", [])
                .control("RS", ["4"])
                .control("nf", [])
                .text([roman(*line)])
                .control("fi", [])
                .control("RE", [])
                .control("PP", []);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut see: Vec<String> = Vec::new();
    if let Some(p) = parent {
        see.push(format!("{p}(1)"));
    }
    see.extend(subcommands.iter().map(|s| format!("{name}-{}(1)", s.get_name())));
    if parent.is_some() && !see.iter().any(|s| s == &format!("{NAME}(1)")) {
        see.push(format!("{NAME}(1)"));
    }
    see.push("openclaw(1) (OpenClaw's own CLI, when installed)".into());
    roff.text([roman(see.join(", "))]);
    roff.to_writer(&mut page).expect("rendering into memory cannot fail");
    man.render_version_section(&mut page).expect("rendering into memory cannot fail");
    out.push((format!("{name}.1"), page));
    for sub in subcommands {
        walk(sub, format!("{name}-{}", sub.get_name()), Some(&name), out);
    }
}
