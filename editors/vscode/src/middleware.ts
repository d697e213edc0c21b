// Middleware for the language client: per-language gating of inline completion and the answer
// to the server's workspace/configuration pull. Only type imports: unit-tested under plain node.

import type { ServerSettings } from "./logic/settings";

interface Doc {
  languageId: string;
}

type Next<A extends unknown[], R> = (...args: A) => R;

export interface MiddlewareOptions {
  inlineEnabled: (languageId: string) => boolean;
  pulledSettings: () => ServerSettings;
}

export function makeMiddleware(options: MiddlewareOptions) {
  return {
    provideInlineCompletionItems<D extends Doc, P, C, T, R>(
      document: D,
      position: P,
      context: C,
      token: T,
      next: Next<[D, P, C, T], R>,
    ): R | null {
      if (!options.inlineEnabled(document.languageId)) {
        return null;
      }
      return next(document, position, context, token);
    },
    workspace: {
      async configuration<T>(
        params: { items: { section?: string }[] },
        token: T,
        next: (params: { items: { section?: string }[] }, token: T) => unknown,
      ): Promise<unknown> {
        const answer = await next(params, token);
        if (!Array.isArray(answer)) {
          return answer;
        }
        return params.items.map((item, i) =>
          item.section === "holefill" ? options.pulledSettings() : answer[i],
        );
      },
    },
  };
}
