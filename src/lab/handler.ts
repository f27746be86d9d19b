import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { URL_NAMESPACE, type IApiError } from '../common/api';

/** An error from a /remote-cluster/ route, carrying the server's one-line message. */
export class RemoteClusterApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string
  ) {
    super(message);
  }
}

/**
 * Call a route of the server extension (`<base_url>/remote-cluster/<endPoint>`), with
 * Jupyter's authentication (token / XSRF) added by ServerConnection.
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, URL_NAMESPACE, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new RemoteClusterApiError(0, 'network', `Cannot reach the Jupyter server: ${String(error)}`);
  }
  const text = await response.text();
  let data: unknown = undefined;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }
  if (!response.ok) {
    const err = (data as IApiError | undefined)?.error;
    throw new RemoteClusterApiError(
      response.status,
      err?.code ?? 'http-' + response.status,
      err?.message ?? `${response.status} ${response.statusText}`
    );
  }
  return data as T;
}
