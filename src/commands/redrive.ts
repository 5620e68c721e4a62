import { AppError } from '../errors.ts';
import type { Command } from './types.ts';

export const redriveCommand: Command = {
  name: 'redrive',
  summary: 'redrive',
  usage: 'redrive',
  options: {},
  async run() {
    throw new AppError('NOT_IMPLEMENTED', "'redrive' is not implemented yet");
  },
};
