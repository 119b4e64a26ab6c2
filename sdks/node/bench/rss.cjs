// Preloaded into each measured run (`node -r`): reports the process's peak memory and CPU
// time (user + system, less sensitive than wall time to other processes) at exit,
// after every `exit` listener has run (the SDK's starts the detached flusher there).
const emit = process.emit;
process.emit = function (event, ...args) {
  const result = emit.call(this, event, ...args);
  if (event === "exit") {
    const u = process.resourceUsage();
    process.stderr.write(`\nmaxrss_kb=${u.maxRSS} cpu_us=${u.userCPUTime + u.systemCPUTime}\n`);
  }
  return result;
};
