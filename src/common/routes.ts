/**
 * URLs of this project, shared by the frontend, the agent and (checked by a test) the
 * Python server extension.
 */
import { URL_NAMESPACE } from './api';

/**
 * The public prefix of what a session serves (its Dask dashboard runs under it): the
 * session's proxy key is the capability in it (docs/security.md, "The browser side").
 */
export function proxiedPrefix(baseUrl: string, key: string): string {
  return `${baseUrl.replace(/\/$/, '')}/${URL_NAMESPACE}/proxied/${key}`;
}
