import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { analyzeRepository, DEFAULT_ANALYSIS_LIMITS } from '../src/analysis/analyze.js'
import { analyzeInThread } from '../src/analysis/analyze-in-thread.js'
import { detectComponent, detectRoutes } from '../src/analysis/detectors.js'

// Issue 10, item 13: a 512 KiB file of whitespace (or of repeated fragments of a pattern) must
// be analysed far below any lock or health threshold. Linear patterns take milliseconds; the
// quadratic ones took minutes. The bound is generous so a busy machine cannot fail it.
const BOUND_MS = 2000
const SIZE = DEFAULT_ANALYSIS_LIMITS.maxFileBytes

/** Each detector's file kind, with the preamble that makes it look at the rest of the file. */
const DETECTORS: [string, string, string][] = [
  ['Express', 'server.js', "const express = require('express')\n"],
  ['Fastify', 'server.ts', "import fastify from 'fastify'\n"],
  ['NestJS', 'users.controller.ts', "import { Controller, Get } from '@nestjs/common'\n"],
  ['Flask', 'app.py', 'from flask import Flask\n'],
  ['FastAPI', 'main.py', 'from fastapi import FastAPI, APIRouter\n'],
  ['Python without a framework', 'plain.py', ''],
  ['Spring Boot', 'OrderController.java', '@RestController\npublic class OrderController {\n'],
  ['React (.js)', 'widget.js', "import React from 'react'\n"],
  ['React (.tsx)', 'widget.tsx', ''],
]

/** Whitespace of every kind, and runs of each pattern's own fragments without their ending. */
const FILLERS: Record<string, string> = {
  spaces: ' ',
  newlines: '\n',
  'mixed whitespace': ' \t\n',
  'CRLF lines': '\r\n',
  'indented lines': '\n    ',
  'identifier run': 'a$',
  'member chain': 'a.',
  'unterminated call': "app.get('",
  'unterminated decorator': "@app.route('/x'",
  'unterminated route object': '.route({ url: ',
  'unterminated mapping': '@GetMapping(',
  'unterminated request mapping': '@RequestMapping(value = {',
  'unterminated Nest decorator': '@Get( [ ',
  'router assignment': 'r = APIRouter(',
  'import fragments': 'from  ',
  'default exports': 'export default ',
  'default export name then spaces': 'export default App    x',
  'generator export': 'export default function      ',
}

function fill(pattern: string, bytes: number): string {
  return pattern.repeat(Math.ceil(bytes / pattern.length)).slice(0, bytes)
}

for (const [detector, file, preamble] of DETECTORS) {
  t.test(`${detector}: adversarial 512 KiB inputs are analysed in bounded time`, async (t) => {
    for (const [name, pattern] of Object.entries(FILLERS)) {
      const source = preamble + fill(pattern, SIZE - preamble.length)
      const started = performance.now()
      detectRoutes(file, source)
      detectComponent(file, source)
      const ms = performance.now() - started
      t.ok(ms < BOUND_MS, `${name}: ${Math.round(ms)} ms < ${BOUND_MS} ms`)
    }
  })
}

t.test('a 512 KiB .py file of newlines is analysed through the whole pipeline', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'portico-adversarial-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await writeFile(path.join(root, 'app.py'), `from flask import Flask\n${'\n'.repeat(SIZE - 24)}`)
  await writeFile(path.join(root, 'ok.py'), "from flask import Flask\n@app.route('/ok')\ndef ok(): pass\n")
  const started = performance.now()
  const result = await analyzeRepository(root)
  const ms = performance.now() - started
  t.ok(ms < BOUND_MS, `${Math.round(ms)} ms < ${BOUND_MS} ms`)
  t.equal(result.summary.files_scanned, 2, 'the large file was read, not skipped')
  t.same(
    result.summary.routes.map((r) => r.path),
    ['/ok'],
  )
})

t.test('analysis runs in a worker thread and stops at its wall-clock budget', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'portico-thread-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  for (let i = 0; i < 50; i++) {
    await writeFile(path.join(root, `r${i}.js`), `const express = require('express')\napp.get('/r${i}', h)\n`)
  }
  const full = await analyzeInThread(root, { timeoutMs: 60_000 })
  t.equal(full.routesCount, 50, 'the thread returns the same result as the in-process analysis')
  t.equal(full.summary.timed_out, false)
  t.equal(full.summary.truncated, false)

  // A budget that has already run out: the walk stops before the first file.
  const late = await analyzeInThread(root, { timeoutMs: 0 })
  t.equal(late.summary.timed_out, true)
  t.equal(late.summary.truncated, true)
  t.ok(late.routesCount < 50, 'a timed-out summary is partial')

  const aborted = new AbortController()
  aborted.abort(new Error('shutting down'))
  await t.rejects(analyzeInThread(root, { timeoutMs: 60_000, signal: aborted.signal }), /shutting down/)
})
