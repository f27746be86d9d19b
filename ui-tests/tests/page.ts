/** What several Galata specs do the same way in the page (not a spec itself). */
import type { IJupyterLabPageFixture } from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';

/** Real settings bring JupyterLab's news question; answer it so it covers nothing. */
export async function dismissNews(page: IJupyterLabPageFixture): Promise<void> {
  const news = page.locator('.jp-toast-button', { hasText: 'No' });
  if (await news.isVisible().catch(() => false)) {
    await news.click();
  }
}

/** The Launcher's "Remote cluster" section (one tile per profile). */
export function remoteClusterSection(page: IJupyterLabPageFixture): Locator {
  return page.locator('.jp-Launcher-section', {
    has: page.locator('.jp-Launcher-sectionTitle', { hasText: 'Remote cluster' })
  });
}

/**
 * JupyterLab's kernel status for a notebook on a stable kernelspec ("Python 3 · Testbed
 * (Slurm) | Idle": the profile, not the job; the job is in our status item).
 */
export const STABLE_IDLE = / · [^|]+ \| Idle/;
export const STABLE_BUSY = / · [^|]+ \| Busy/;
