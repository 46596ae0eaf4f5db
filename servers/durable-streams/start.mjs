// Starts the pinned Durable Streams reference server on 127.0.0.1 for eventbus tests.
//
//   node start.mjs [--port N] [--data-dir DIR] [--long-poll-ms MS]
//
// --port 0 (the default) lets the OS choose a free port. Once the server answers, one
// line "DS_SERVER_URL=http://127.0.0.1:<port>" is printed on stdout. SIGTERM or SIGINT
// stops the server cleanly (closing the file store, if any) and exits with status 0.
import { DurableStreamTestServer } from "@durable-streams/server"

function parseArgs(argv) {
  const options = { port: 0, dataDir: undefined, longPollMs: 30000 }
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]
    const value = argv[i + 1]
    if (value === undefined) throw new Error(`option ${name} needs a value`)
    if (name === `--port`) options.port = Number.parseInt(value, 10)
    else if (name === `--data-dir`) options.dataDir = value
    else if (name === `--long-poll-ms`) options.longPollMs = Number.parseInt(value, 10)
    else throw new Error(`unknown option ${name}`)
    i++
  }
  if (!Number.isInteger(options.port) || options.port < 0) {
    throw new Error(`--port must be a non-negative integer`)
  }
  if (!Number.isInteger(options.longPollMs) || options.longPollMs <= 0) {
    throw new Error(`--long-poll-ms must be a positive integer`)
  }
  return options
}

const options = parseArgs(process.argv.slice(2))
const server = new DurableStreamTestServer({
  host: `127.0.0.1`,
  port: options.port,
  dataDir: options.dataDir,
  longPollTimeout: options.longPollMs,
})
const url = await server.start()
process.stdout.write(`DS_SERVER_URL=${url}\n`)

let stopping = false
async function stop() {
  if (stopping) return
  stopping = true
  // Keep-alive connections would hold server.close() open: drop them after a grace period.
  const force = setTimeout(() => server.server?.closeAllConnections?.(), 200)
  try {
    await server.stop()
  } finally {
    clearTimeout(force)
  }
  process.exit(0)
}
process.on(`SIGTERM`, stop)
process.on(`SIGINT`, stop)
