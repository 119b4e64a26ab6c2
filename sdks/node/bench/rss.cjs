// Preloaded into each measured run (`node -r`): reports the process's peak memory at exit.
process.on("exit", () => process.stderr.write(`\nmaxrss_kb=${process.resourceUsage().maxRSS}\n`));
