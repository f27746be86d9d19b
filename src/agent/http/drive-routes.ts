/**
 * The cluster drive's routes (Jupyter's contents API, per cluster profile):
 *
 *   GET    /api/v1/profiles/<p>/files/<path>?content=0|1&type=&format=   a contents model
 *   PUT    /api/v1/profiles/<p>/files/<path>   {type, format, content, chunk?}  save (atomic)
 *   POST   /api/v1/profiles/<p>/files/<dir>    {type, ext?} new untitled | {copy_from} a copy
 *   PATCH  /api/v1/profiles/<p>/files/<path>   {path}  rename
 *   DELETE /api/v1/profiles/<p>/files/<path>
 *   GET|POST /api/v1/profiles/<p>/checkpoints/<path>         list | create
 *   POST   /api/v1/profiles/<p>/checkpoints/<path>?restore=<id>
 *   DELETE /api/v1/profiles/<p>/checkpoints/<path>?id=<id>
 *   GET    /api/v1/profiles/<p>/download/<path>   the bytes, streamed
 *
 * Paths are drive-relative, each segment percent-encoded.
 */
import type * as http from 'node:http';
import { pipeline } from 'node:stream/promises';

import { sendJson } from './json';
import { DriveError, MAX_OPEN_BYTES, type ClusterDrive, type ContentType } from '../cluster/drive';

/** A notebook or file saved whole, as JSON (base64 grows it by a third). */
export const MAX_SAVE_BODY = Math.ceil((MAX_OPEN_BYTES * 4) / 3) + (1 << 20);

export const DRIVE_ROUTE =
  /^\/api\/v1\/profiles\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/(files|checkpoints|download)(?:\/(.*))?$/;

type ReadJson = (req: http.IncomingMessage, maxBytes: number) => Promise<unknown>;

function drivePath(raw: string | undefined): string {
  try {
    return (raw ?? '')
      .split('/')
      .map(s => decodeURIComponent(s))
      .join('/');
  } catch {
    throw new DriveError(400, 'bad-path', 'The path is not percent-encoded correctly.');
  }
}

function send(res: http.ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status, { 'Cache-Control': 'no-store' });
    res.end();
    return;
  }
  sendJson(res, status, body);
}

function object(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new DriveError(400, 'invalid', 'The request body must be a JSON object.');
  }
  return body as Record<string, unknown>;
}

function notAllowed(req: http.IncomingMessage): DriveError {
  return new DriveError(405, 'method-not-allowed', `${req.method} is not allowed here.`);
}

export async function driveRoute(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  drive: ClusterDrive,
  match: RegExpMatchArray,
  readJson: ReadJson
): Promise<void> {
  const kind = match[2];
  const path = drivePath(match[3]);
  const query = new URL(req.url ?? '/', 'http://agent').searchParams;
  if (kind === 'download') {
    if (req.method !== 'GET') {
      throw notAllowed(req);
    }
    const file = await drive.download(path);
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': file.size,
      'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(file.name)}`,
      'Cache-Control': 'no-store'
    });
    // (a failure midway cuts the response short: the client sees an incomplete download)
    await pipeline(file.stream, res);
    return;
  }
  if (kind === 'checkpoints') {
    const id = query.get('restore') ?? query.get('id');
    switch (req.method) {
      case 'GET':
        return send(res, 200, await drive.listCheckpoints(path));
      case 'POST':
        if (query.has('restore')) {
          await drive.restoreCheckpoint(path, id ?? '');
          return send(res, 204);
        }
        return send(res, 201, await drive.createCheckpoint(path));
      case 'DELETE':
        await drive.deleteCheckpoint(path, id ?? '');
        return send(res, 204);
      default:
        throw notAllowed(req);
    }
  }
  switch (req.method) {
    case 'GET': {
      const type = query.get('type');
      const format = query.get('format');
      return send(
        res,
        200,
        await drive.get(path, {
          content: query.get('content') !== '0',
          ...(type === 'file' || type === 'notebook' || type === 'directory' ? { type: type as ContentType } : {}),
          ...(format === 'text' || format === 'base64' ? { format } : {})
        })
      );
    }
    case 'PUT':
      return send(res, 200, await drive.save(path, object(await readJson(req, MAX_SAVE_BODY))));
    case 'POST': {
      const body = object(await readJson(req, 1 << 16));
      if (typeof body.copy_from === 'string') {
        return send(res, 201, await drive.copy(body.copy_from, path));
      }
      return send(res, 201, await drive.newUntitled(path, body));
    }
    case 'PATCH': {
      const body = object(await readJson(req, 1 << 16));
      if (typeof body.path !== 'string') {
        throw new DriveError(400, 'invalid', 'A rename is {"path": "<new path>"}.');
      }
      return send(res, 200, await drive.rename(path, body.path));
    }
    case 'DELETE':
      await drive.delete(path);
      return send(res, 204);
    default:
      throw notAllowed(req);
  }
}
