import { AppError } from '../errors.ts';
import type { Command } from './types.ts';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'serve',
  usage: 'serve',
  options: {},
  async run() {
    throw new AppError('NOT_IMPLEMENTED', "'serve' is not implemented yet");
  },
};
