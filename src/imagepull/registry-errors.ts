import { notFound, operationFailed, precondition, type AppError } from '../errors.js';
import { readLimited } from '../net/http.js';
import type { Credentials } from './auth.js';
import type { ImageRef } from './reference.js';

/* How registry answers that are not the document asked for become AppErrors. */

export const MAX_ERROR_BODY = 64 * 1024;

export function statusText(res: Response): string {
  return `${res.status}${res.statusText === '' ? '' : ` ${res.statusText}`}`;
}

/** "CODE: message; CODE: message" from a distribution-spec error body, or ''. */
export async function errorSummary(res: Response): Promise<string> {
  let text: string;
  try {
    const bytes = await readLimited(res, MAX_ERROR_BODY, () => new Error('body too large'));
    text = bytes.toString('utf8');
  } catch {
    return '';
  }
  try {
    const body = JSON.parse(text) as { errors?: unknown; details?: unknown };
    if (Array.isArray(body.errors)) {
      return body.errors
        .map((e: unknown) => {
          const o = (e ?? {}) as { code?: unknown; message?: unknown };
          return [o.code, o.message].filter((x) => typeof x === 'string' && x !== '').join(': ');
        })
        .filter((s) => s !== '')
        .join('; ');
    }
  } catch {
    /* not JSON */
  }
  return '';
}

/** What the client knows about credentials for a registry, for the wording of auth errors. */
export interface CredentialContext {
  creds: Credentials | undefined;
  /** True when Basic credentials were sent for this repository. */
  sentBasic: boolean;
  loginHint: string;
}

/** The AppError for a non-2xx registry answer, naming registry, repository, status and the registry's own error text. */
export async function statusError(
  ref: ImageRef,
  res: Response,
  what: string,
  blob: boolean,
  auth: CredentialContext,
): Promise<AppError> {
  const { registry, repository } = ref;
  const summary = await errorSummary(res);
  const detail = summary === '' ? '' : `: ${summary}`;
  const status = statusText(res);
  switch (res.status) {
    case 401:
    case 403: {
      const { creds } = auth;
      if (res.status === 401 && creds !== undefined && auth.sentBasic) {
        return precondition(
          `registry ${registry} rejected the credentials of ${creds.username} for ${repository} (${status})${detail}`,
          `check the username and password for ${registry} in ~/.docker/config.json, or log in again with docker login`,
        );
      }
      return precondition(
        `registry ${registry} denied access to ${repository} (${status}) for ${what}${detail}`,
        creds === undefined
          ? `the repository may not exist or may be private; check the name, or ${auth.loginHint}`
          : `check the repository name and that ${creds.username} may pull it`,
      );
    }
    case 404:
      return blob
        ? notFound(
            `registry ${registry} has no ${what} in ${repository} (${status})${detail}`,
            'the image is incomplete on the registry; push it again',
          )
        : notFound(
            `registry ${registry} has no ${what} in ${repository} (${status})${detail}`,
            'check the repository name and tag',
          );
    case 429:
      return operationFailed(`registry ${registry} is rate-limiting requests for ${repository} (${status})${detail}`, {
        hint: 'wait and retry; logging in (docker login) raises the limit on Docker Hub',
      });
    default:
      return operationFailed(`registry ${registry} answered ${status} for ${what} of ${repository}${detail}`, {
        hint: res.status >= 500 ? 'the registry has a problem; retry later' : 'check the image reference',
      });
  }
}
