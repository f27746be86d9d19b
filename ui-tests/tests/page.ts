/** What several Galata specs do the same way in the page (not a spec itself). */
import type { IJupyterLabPageFixture } from '@jupyterlab/galata';

/** Real settings bring JupyterLab's news question; answer it so it covers nothing. */
export async function dismissNews(page: IJupyterLabPageFixture): Promise<void> {
  const news = page.locator('.jp-toast-button', { hasText: 'No' });
  if (await news.isVisible().catch(() => false)) {
    await news.click();
  }
}
