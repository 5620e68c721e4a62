import { AppError } from '../errors.ts';
import type { Command } from './types.ts';

export const demoCommand: Command = {
  name: 'demo',
  summary: 'demo',
  usage: 'demo',
  options: {},
  async run() {
    throw new AppError('NOT_IMPLEMENTED', "'demo' is not implemented yet");
  },
};
